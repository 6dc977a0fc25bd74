"""Documents -> tiles: open PDFs and images, render pages, plan and cut tiles.

``pages`` opens a document and renders its pages, ``tiling`` chooses each page's grid
(TokenPacker-HD dynamic patch splitting plus a global view) and cuts normalised views,
``prepare`` is the two together, one page at a time.
"""
