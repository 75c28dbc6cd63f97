"""Room `nn` (notebook 03): the reduced binarized network, its training recipe, folding into integer thresholds,
checkpoints, and many networks trained together (`train_jobs`, `select_and_train`: bit for bit `train_bnn`'s)."""
from .batched import Job, Selection, select_and_train, train_jobs
from .binary import BNN, READOUTS, array_usage, model_meta
from .checkpoint import find_checkpoint, load_checkpoint, load_network, load_trained, save_checkpoint
from .folded import DigitalReadout, FoldedBNN, FoldedLayer, VoteReadout, fold, threshold_summary
from .train import Recipe, TrainResult, accuracy, recalibrate_bn, train_bnn

__all__ = ["BNN", "READOUTS", "array_usage", "model_meta", "find_checkpoint", "load_checkpoint", "load_network",
           "load_trained", "save_checkpoint", "DigitalReadout", "FoldedBNN", "FoldedLayer", "VoteReadout", "fold",
           "threshold_summary", "Recipe", "TrainResult", "accuracy", "recalibrate_bn", "train_bnn",
           "Job", "Selection", "select_and_train", "train_jobs"]
