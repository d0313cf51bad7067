"""Registries of mmtrackgen, children of mmdet's (which are children of mmengine's).

A config with ``default_scope='mmtrackgen'`` finds our components by plain ``type=`` names and
falls back to mmdet's and mmengine's. ``locations`` lets the registries import the modules that
register into them on first lookup, ours and mmdet's (whose components register into mmdet's
registries, our parents), so no import-everything call is needed.
"""
from mmdet.registry import DATA_SAMPLERS as MMDET_DATA_SAMPLERS
from mmdet.registry import DATASETS as MMDET_DATASETS
from mmdet.registry import EVALUATOR as MMDET_EVALUATOR
from mmdet.registry import HOOKS as MMDET_HOOKS
from mmdet.registry import LOG_PROCESSORS as MMDET_LOG_PROCESSORS
from mmdet.registry import LOOPS as MMDET_LOOPS
from mmdet.registry import METRICS as MMDET_METRICS
from mmdet.registry import MODEL_WRAPPERS as MMDET_MODEL_WRAPPERS
from mmdet.registry import MODELS as MMDET_MODELS
from mmdet.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMDET_OPTIM_WRAPPER_CONSTRUCTORS
from mmdet.registry import OPTIM_WRAPPERS as MMDET_OPTIM_WRAPPERS
from mmdet.registry import OPTIMIZERS as MMDET_OPTIMIZERS
from mmdet.registry import PARAM_SCHEDULERS as MMDET_PARAM_SCHEDULERS
from mmdet.registry import RUNNER_CONSTRUCTORS as MMDET_RUNNER_CONSTRUCTORS
from mmdet.registry import RUNNERS as MMDET_RUNNERS
from mmdet.registry import TASK_UTILS as MMDET_TASK_UTILS
from mmdet.registry import TRANSFORMS as MMDET_TRANSFORMS
from mmdet.registry import VISBACKENDS as MMDET_VISBACKENDS
from mmdet.registry import VISUALIZERS as MMDET_VISUALIZERS
from mmdet.registry import WEIGHT_INITIALIZERS as MMDET_WEIGHT_INITIALIZERS
from mmengine.registry import Registry

RUNNERS = Registry('runner', parent=MMDET_RUNNERS, locations=['mmtrackgen.engine', 'mmdet.engine'])
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMDET_RUNNER_CONSTRUCTORS, locations=['mmdet.engine'])
LOOPS = Registry('loop', parent=MMDET_LOOPS, locations=['mmdet.engine'])
HOOKS = Registry('hook', parent=MMDET_HOOKS, locations=['mmtrackgen.engine', 'mmdet.engine'])
LOG_PROCESSORS = Registry('log_processor', parent=MMDET_LOG_PROCESSORS, locations=['mmdet.engine'])

DATASETS = Registry(
    'dataset', parent=MMDET_DATASETS, locations=['mmtrackgen.datasets', 'mmdet.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMDET_DATA_SAMPLERS, locations=['mmtrackgen.datasets', 'mmdet.datasets'])
TRANSFORMS = Registry(
    'transform',
    parent=MMDET_TRANSFORMS,
    locations=['mmtrackgen.datasets.transforms', 'mmdet.datasets.transforms'])

MODELS = Registry('model', parent=MMDET_MODELS, locations=['mmtrackgen.models', 'mmdet.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMDET_MODEL_WRAPPERS, locations=['mmtrackgen.models', 'mmdet.models'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer',
    parent=MMDET_WEIGHT_INITIALIZERS,
    locations=['mmtrackgen.models', 'mmdet.models'])
TASK_UTILS = Registry(
    'task util', parent=MMDET_TASK_UTILS, locations=['mmtrackgen.models', 'mmdet.models'])

OPTIMIZERS = Registry('optimizer', parent=MMDET_OPTIMIZERS, locations=['mmdet.engine'])
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=MMDET_OPTIM_WRAPPERS, locations=['mmdet.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMDET_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmdet.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMDET_PARAM_SCHEDULERS, locations=['mmdet.engine'])

METRICS = Registry(
    'metric', parent=MMDET_METRICS, locations=['mmtrackgen.evaluation', 'mmdet.evaluation'])
EVALUATOR = Registry('evaluator', parent=MMDET_EVALUATOR, locations=['mmdet.evaluation'])

VISUALIZERS = Registry(
    'visualizer',
    parent=MMDET_VISUALIZERS,
    locations=['mmtrackgen.visualization', 'mmdet.visualization'])
VISBACKENDS = Registry(
    'vis_backend',
    parent=MMDET_VISBACKENDS,
    locations=['mmtrackgen.visualization', 'mmdet.visualization'])

# Tracklet augmentation policies (generation/augment.py): one annotated layout -> new layouts.
TRACKLET_AUGMENTS = Registry('tracklet augment', locations=['mmtrackgen.generation'])
