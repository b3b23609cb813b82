from setuptools import find_packages, setup

package_name = "worldsample_worldmodel"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="WorldSample developers",
    maintainer_email="dev@worldsample.org",
    description="Action-conditioned video world model: demo pre-training, post-training on real rollouts, grounded synthetic rollouts, fidelity.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "world_model_node = worldsample_worldmodel.nodes.entries:world_model_node",
        ],
    },
)
