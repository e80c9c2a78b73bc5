"""Packaging for regression_lab: the metadata lives in settings.ini."""
from configparser import ConfigParser

import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]
lib_path = cfg["lib_path"]

setuptools.setup(
    version=cfg["version"],
    description=cfg["description"],
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    keywords=cfg["keywords"].split(),
    license=cfg["license"],
    author=cfg["author"],
    author_email=cfg["author_email"],
    classifiers=["Programming Language :: Python :: 3", "Development Status :: 3 - Alpha"],
    url=f"https://github.com/{cfg['user']}/{cfg['repo']}",
    packages=setuptools.find_packages(include=[lib_path, f"{lib_path}.*"]),
    include_package_data=True,
    install_requires=cfg["requirements"].split(),
    extras_require={key.removesuffix("_requirements"): cfg[key].split() for key in cfg if key.endswith("_requirements") and key != "requirements"},
    entry_points={
        "console_scripts": cfg["console_scripts"].split(),
        "nbdev": [f"{lib_path}={lib_path}._modidx:d"],
    },
    zip_safe=False,
)
