"""facecast.media"""
