"""facecast.provenance"""
