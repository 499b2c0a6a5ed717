"""SAEHD-family autoencoders (DF, LIAE) written from DeepFaceLab's published design."""
