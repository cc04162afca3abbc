"""Model registry: `create_model(name, num_classes, image_size, weights)` and `list_models()`."""

from ganfp.models._registry import list_models, model_entry, register_model
from ganfp.models.backbone import Backbone
from ganfp.models.factory import create_model, load_weights, read_state_dict
from ganfp.models.sizes import image_size_problem, imagenet_weights, min_image_size

__all__ = ["Backbone", "create_model", "image_size_problem", "imagenet_weights", "list_models", "load_weights",
           "min_image_size", "model_entry", "read_state_dict", "register_model"]
