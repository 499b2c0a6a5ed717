"""facecast.imaging: the pure image maths every stage shares (numpy/OpenCV, no I/O).

Why a floor of its own: stages do not import each other, so maths two stages need (colour transfer in
training and merging, the landmark hull, sharpness) used to be copied, and the copies drifted.
Each function lives here once; any stage may import this package, it imports no stage.
"""
