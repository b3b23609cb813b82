from setuptools import find_packages, setup

package_name = "worldsample_common"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="WorldSample developers",
    maintainer_email="dev@worldsample.org",
    description="WorldSample's shared interface: episodes, env protocol, image codec, bag I/O, topics, node support.",
    license="Apache-2.0",
)
