"""facecast.merge"""
