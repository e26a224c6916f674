"""The order of the examples in the gallery: the blog's story, not the alphabet."""

ORDER = [
    "plot_denoising.py",
    "plot_bottleneck_map.py",
    "plot_grid_search.py",
    "plot_loss_curves.py",
]


class GalleryOrder:
    """Sort key for sphinx-gallery's ``within_subsection_order``.

    Examples missing from ``ORDER`` come last, by file name.
    """

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        position = ORDER.index(filename) if filename in ORDER else len(ORDER)
        return (position, filename)

    def __repr__(self):
        return f"<{type(self).__name__}>"
