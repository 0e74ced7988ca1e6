"""The management API's services: what its HTTP surface does with resources, without HTTP.

- ``resources.ResourceService``: create, update and delete any kind (references checked, a Connection's secrets
  merged), and ``public_document`` (what a client may see: secrets masked).
- ``properties.PropertyService``: read and set a ModelDeployment's model properties, checked against what its
  model defines (``ModelProperties``).

Routers (``*_routes``) and the dashboard (``ui``) call the services; the services stand on storage and the core
and know no request, no response and no reconcile loop (they tell it about a change through ``on_change``).
"""

from legion.api.services.properties import ModelProperties, Property, PropertyService
from legion.api.services.resources import ResourceService, public_document

__all__ = ["ModelProperties", "Property", "PropertyService", "ResourceService", "public_document"]
