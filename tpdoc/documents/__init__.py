"""Documents -> tiles: open PDFs and images, render pages, plan and cut tiles.

``pages`` opens a document (the format sniffed from its content) and renders its pages,
reading them through ``pdf`` (pymupdf: PDF pages rasterised at exact sizes) or ``images``
(Pillow: image frames, upright and RGB); ``tiling`` chooses each page's grid
(TokenPacker-HD dynamic patch splitting plus a global view) and cuts normalised views,
``prepare`` is the two together, one page at a time.
"""
