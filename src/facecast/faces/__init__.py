"""facecast.faces"""
