import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def png_size():
    """(width, height) in pixels of a PNG file, and whether it has more than one colour (not blank)."""

    def read(path):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        return image.size, len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10

    return read
