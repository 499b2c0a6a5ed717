"""facecast.faceset"""
