"""facecast studio: the browser workspace (FastAPI + uvicorn, plain HTML/JS pages served by the package).

    facecast studio -w WS            # prints http://127.0.0.1:PORT/?token=...

Why FastAPI and not Gradio: the editors (mask polygons, landmark dragging, the interactive merger's key
handling) are canvas widgets with their own mouse and keyboard logic; Gradio's component model hosts them
only as custom components with a JS build step, while FastAPI serves plain ES modules as they are and
gives us the middleware the security rules need (token, CSRF header, path checks).

Every page calls the same stage functions the CLI calls; jobs.py runs them in the background.
"""
