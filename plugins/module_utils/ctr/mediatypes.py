# Copyright (c) daemonless.ctr contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Media types of the OCI image spec and of Docker's schema 2, and how they map."""

from __future__ import annotations

OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar'
OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip'
OCI_LAYER_ZSTD = 'application/vnd.oci.image.layer.v1.tar+zstd'

DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json'
DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json'
DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json'
DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar'
DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip'
DOCKER_FOREIGN_LAYER = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'

INDEXES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
CONFIGS = (OCI_CONFIG, DOCKER_CONFIG)

# Docker schema 2 -> OCI, used when content from Docker's world enters the store.
TO_OCI = {
    DOCKER_MANIFEST_LIST: OCI_INDEX,
    DOCKER_MANIFEST: OCI_MANIFEST,
    DOCKER_CONFIG: OCI_CONFIG,
    DOCKER_LAYER: OCI_LAYER,
    DOCKER_LAYER_GZIP: OCI_LAYER_GZIP,
}

LAYER_BY_COMPRESSION = {'gzip': OCI_LAYER_GZIP, 'none': OCI_LAYER, 'zstd': OCI_LAYER_ZSTD}
