"""Console-script entries of the nodes (``<node> = worldsample_worldmodel.nodes.entries:<node>``), apart from the node modules
themselves: an entry named like its node module in ``nodes/__init__`` would be replaced by that submodule as
soon as it is imported."""

from worldsample_common.nodes.start import node_entry

world_model_node = node_entry("worldsample_worldmodel.nodes.world_model_node")
