from setuptools import find_packages, setup

package_name = "worldsample_learner"

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
    description="Image-based off-policy RL with demonstrations and Policy-Paced Learning over real + synthetic transitions.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "learner_node = worldsample_learner.nodes.entries:learner_node",
            "success_node = worldsample_learner.nodes.entries:success_node",
            "success_keys = worldsample_learner.nodes.success_node:keys_main",
        ],
    },
)
