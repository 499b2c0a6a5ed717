"""facecast.masks"""
