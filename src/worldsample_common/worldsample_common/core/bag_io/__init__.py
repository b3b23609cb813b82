"""rosbag2 (MCAP) input/output of WorldSample episodes, through the pure-Python `rosbags`.

The schema of our bags is the `worldsample_msgs` .msg files themselves: they are registered
in a rosbags typestore (on top of ROS 2 Kilted's standard types), so a bag written here holds
`worldsample_msgs/msg/Transition` messages that `ros2 bag info` on a full ROS install and
Foxglove can open. Metadata version 8 is written by default so ROS 2 Humble's `ros2 bag`
reads it too (Humble needs its MCAP storage plugin installed).

Topics of an episode bag (names in `TOPIC_*`):

- ``/transitions``: one `Transition` per step (images of s and s', proprio, action, reward, ...)
- ``/episodes``: `EpisodeInfo` at the start and the end of each episode

Crash safety: `EpisodeBagWriter` appends every message to a write-ahead log (``recording.wal``
in the bag directory, flushed per message, fsynced every ``fsync_period_s`` and on `sync()`,
which the recorder calls at each episode's END) besides the MCAP writer. A normal close writes
the MCAP file and metadata.yaml, fsyncs them, then deletes the log. If the process dies (even
SIGKILL), `recover_bag` rebuilds a readable bag from the log, up to its last complete message.
A write that fails for lack of space (ENOSPC, EDQUOT, EFBIG) is noted in ``recording.status``, a
file allocated when the bag opens and rewritten in place, so `bag_status` can say "disk full"
rather than "killed". A ``.mcap`` cut short (copied half-way, disk full at close) is reported as
truncated, and `recover_bag` salvages its complete records.

What a bag is, in its metadata.yaml ``custom_data`` (`bag_status` reads it):
``worldsample.status`` = ``complete`` | ``cut: <reason>`` (shutdown, restarted, grace_timeout:
fewer transitions than the END announced) | ``recovered: <detail>``, plus
``worldsample.transitions`` / ``worldsample.expected`` and ``worldsample.run_id``.

The modules, by job (every public name is importable from ``worldsample_common.core.bag_io``):

- `codec`: the one codec of Transition / EpisodeInfo (encode an episode, decode a Transition
  stream), the typestore, `BagError`;
- `write`: `EpisodeBagWriter`, `write_episode_bag`, `write_episodes_bag`, the write-ahead log;
- `read`: `read_bag_messages`, `read_bag_episodes`, `read_episode_bag`, `load_episodes`;
- `recover`: `recover_bag` (write-ahead log, truncated ``.mcap``);
- `metadata`: `bag_status`, `bag_closed`, `find_bags`, the status file, truncation checks.
"""

from .codec import (
    DEFAULT_PERIOD_NS,
    EPISODE_INFO_TYPE,
    TOPIC_EPISODES,
    TOPIC_TRANSITIONS,
    TRANSITION_TYPE,
    BagError,
    episode_from_transitions,
    episode_info_msg,
    episode_messages,
    episode_stamps,
    header,
    image_array,
    image_msg,
    msg_class,
    msgs_dir,
    transition_msg,
    transition_msgs,
    typestore,
)
from .metadata import (
    MCAP_MAGIC,
    STATUS_NAME,
    STATUS_SIZE,
    WAL_NAME,
    bag_closed,
    bag_status,
    find_bags,
    mcap_file,
    mcap_truncated,
    metadata_count,
    read_metadata,
    read_status_file,
)
from .read import (
    LoadReport,
    holds_transitions,
    load_episodes,
    load_episodes_report,
    read_bag_episodes,
    read_bag_messages,
    read_episode_bag,
)
from .recover import RecoveryReport, recover_bag, salvage_mcap
from .write import (
    DEFAULT_BAG_VERSION,
    DISK_FULL_ERRNOS,
    WAL_MAGIC,
    EpisodeBagWriter,
    read_wal,
    write_episode_bag,
    write_episodes_bag,
)

__all__ = [
    "DEFAULT_BAG_VERSION", "DEFAULT_PERIOD_NS", "DISK_FULL_ERRNOS", "EPISODE_INFO_TYPE", "MCAP_MAGIC",
    "STATUS_NAME", "STATUS_SIZE", "TOPIC_EPISODES", "TOPIC_TRANSITIONS", "TRANSITION_TYPE", "WAL_MAGIC",
    "WAL_NAME", "BagError", "EpisodeBagWriter", "LoadReport", "RecoveryReport", "bag_closed", "bag_status",
    "episode_from_transitions", "episode_info_msg", "episode_messages", "episode_stamps", "find_bags", "header",
    "holds_transitions", "image_array", "image_msg", "load_episodes", "load_episodes_report", "mcap_file",
    "mcap_truncated", "metadata_count", "msg_class", "msgs_dir", "read_bag_episodes", "read_bag_messages",
    "read_episode_bag", "read_metadata", "read_status_file", "read_wal", "recover_bag", "salvage_mcap",
    "transition_msg", "transition_msgs", "typestore", "write_episode_bag", "write_episodes_bag",
]
