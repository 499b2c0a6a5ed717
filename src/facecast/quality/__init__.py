"""facecast.quality"""
