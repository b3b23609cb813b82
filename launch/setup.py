from glob import glob

from setuptools import find_packages, setup

package_name = "worldsample_bringup"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
        ("share/" + package_name + "/launch", glob("*.launch.py")),
        ("share/" + package_name + "/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="WorldSample developers",
    maintainer_email="dev@worldsample.org",
    description="Bringup of the WorldSample closed loop: launch files, node graph, the `worldsample` command.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "worldsample = worldsample_bringup.cli:main",
            "payload_link_node = worldsample_bringup.payload_link:main",
        ],
    },
)
