"""Studio pages: each module with a `router` (fastapi.APIRouter) is included by app.create_app."""
