"""The old import path of ``resgan evaluate``'s pieces, kept for scripts that use it: the image sources
are :mod:`resgan.metrics.sources`, the orchestration :mod:`resgan.verbs.evaluate`. Nothing in resgan
imports this module."""

from .metrics.sources import (  # noqa: F401
    NATIVE,
    Source,
    dataset_source,
    folder_shape,
    folder_signature,
    folder_source,
    images_source,
    list_images,
    parse_dataset_spec,
    read_rgb,
    source_features,
)
from .verbs.evaluate import (  # noqa: F401
    ALL_METRICS,
    DEFAULT_SAMPLES,
    GAN_METRICS,
    PAIR_METRICS,
    RESOLUTION_RULE,
    cas_for_generator,
    check_json_path,
    evaluate,
    format_table,
    generate_samples,
    generator_data_config,
    load_source,
    pair_metrics,
    parse_metrics,
    source_kind,
    write_json,
)
