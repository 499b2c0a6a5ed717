"""facecast.train"""
