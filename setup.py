from setuptools import find_packages, setup


def parse_requirements(path):
    """Requirement lines of one requirements/*.txt file, comments dropped."""
    with open(path) as f:
        return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setup(
    name='mmtrackgen',
    version='0.1.0',
    description='Tracklet-conditioned video generation (TrackDiffusion) for OpenMMLab',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'projects')),
    # The versions the suite runs on (3.11, 3.12); the code needs at least 3.10 (X | None).
    python_requires='>=3.11',
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
)
