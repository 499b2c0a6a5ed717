"""facecast: a face-replacement studio whose every output is labelled as synthetic."""

__version__ = "0.1.0"
