"""`python -m facecast` (and `torchrun -m facecast`) run the same CLI as the console script."""

from facecast.cli import main

if __name__ == "__main__":
    main()
