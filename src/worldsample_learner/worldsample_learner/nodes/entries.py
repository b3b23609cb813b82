"""Console-script entries of the nodes (``<node> = worldsample_learner.nodes.entries:<node>``), apart from the node modules
themselves: an entry named like its node module in ``nodes/__init__`` would be replaced by that submodule as
soon as it is imported."""

from worldsample_common.nodes.start import node_entry

learner_node = node_entry("worldsample_learner.nodes.learner_node")
success_node = node_entry("worldsample_learner.nodes.success_node")
