"""reprolab: universal input-space programs against frozen image classifiers.

>>> import reprolab
>>> model = reprolab.load_model()          # efficientnet_lite0, offline
>>> program = reprolab.AdditivePerturbation(model.input_size, eps=10 / 255)
"""

from . import augment, config, data, datafree, gallery, metrics, reprogramming, uap, zoo
from .artifacts import load_artifact, save_artifact
from .config import data_root
from .metrics import (accuracy, error_rate, evaluate_perturbation, fooling_rate, predict, targeted_success,
                      transfer_matrix)
from .models import FrozenClassifier, imagenet_class_names, list_models, load_model, wrap_model
from .augment import RandomViews
from .objectives import FeatureActivation, Targeted, TaskCrossEntropy, Untargeted
from .programs import AdditivePerturbation, InputProgram, ReprogrammingFrame, load_program, save_program
from .train import Callback, History, TensorBatches, fit

__version__ = "0.1.0"

__all__ = [
    "AdditivePerturbation", "Callback", "FeatureActivation", "FrozenClassifier", "History", "InputProgram", "RandomViews",
    "ReprogrammingFrame", "Targeted", "TaskCrossEntropy", "TensorBatches", "Untargeted", "accuracy",
    "data_root", "error_rate", "evaluate_perturbation", "fit", "fooling_rate", "imagenet_class_names",
    "list_models", "load_artifact", "load_model", "load_program", "predict", "save_artifact",
    "save_program", "targeted_success", "transfer_matrix", "wrap_model",
]
