from setuptools import find_packages, setup

package_name = "worldsample_control"

NODES = {
    "sim_node": "worldsample_control.nodes.sim_node:main",
    "arm_control_node": "worldsample_control.nodes.arm_control_node:main",
    "camera_node": "worldsample_control.nodes.camera_node:main",
    "actor_node": "worldsample_control.nodes.actor_node:main",
    "recorder_node": "worldsample_control.nodes.recorder_node:main",
}

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
