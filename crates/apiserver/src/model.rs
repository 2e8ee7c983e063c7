//! What the server serves at a moment: the registry of resources, their
//! schemas and the OpenAPI documents, rebuilt as one value when custom
//! resources come and go, so a request sees one consistent snapshot.

use crate::error::Error;
use crate::openapi::{Documents, Schemas};
use crate::registry::{Registry, Resource};

pub struct Model {
    pub registry: Registry,
    pub schemas: Schemas,
    pub documents: Documents,
}

impl Model {
    /// The built-in groups.
    pub fn builtin() -> Result<Model, Error> {
        let groups = crate::groups::all();
        let registry = Registry::new(groups.iter().flat_map(|g| g.resources.clone()));
        let schemas = Schemas::build(&groups, &registry)?;
        let documents = Documents::build(&registry, &schemas);
        Ok(Model {
            registry,
            schemas,
            documents,
        })
    }

    /// This model with custom resources replaced by `custom`.
    pub fn with_custom(&self, custom: Vec<Resource>) -> Model {
        let mut registry = self.registry.clone();
        let mut schemas = self.schemas.clone();
        registry.retain_builtin();
        for r in custom {
            schemas.add_resource(&r);
            registry.upsert(r);
        }
        let documents = Documents::build(&registry, &schemas);
        Model {
            registry,
            schemas,
            documents,
        }
    }
}
