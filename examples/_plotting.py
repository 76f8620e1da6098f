"""Optional PNG output for the examples: matplotlib when installed, else a note."""
import os

OUT_DIR = os.environ.get("FASTCONV_EXAMPLES_OUT", os.path.join(os.path.dirname(__file__), "out"))


def figure(path, draw, size=(6, 4)):
    """Call draw(plt) on a new figure and save it to OUT_DIR/path (or say why not)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(matplotlib not installed: skipping {path}; pip install matplotlib)")
        return None
    os.makedirs(OUT_DIR, exist_ok=True)
    fig = plt.figure(figsize=size)
    draw(plt)
    fig.tight_layout()
    full = os.path.join(OUT_DIR, path)
    fig.savefig(full, dpi=110)
    plt.close(fig)
    print(f"wrote {full}")
    return full
