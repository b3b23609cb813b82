from setuptools import find_packages, setup

package_name = "worldsample_control"

# each node starts through worldsample_common.nodes.start (a Ctrl-C during its imports: no traceback)
NODES = {name: f"worldsample_control.nodes.entries:{name}"
         for name in ("sim_node", "arm_control_node", "camera_node", "actor_node", "recorder_node")}

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    package_data={"worldsample_control": ["core/sim/assets/**/*"]},
    include_package_data=True,
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="WorldSample developers",
    maintainer_email="dev@worldsample.org",
    description="WorldSample robot side: simulator node, arm control, cameras, actor, recorder.",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"{name} = {target}" for name, target in NODES.items()]},
)
