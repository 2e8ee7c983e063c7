//! What the server serves at a moment: the registry of resources, their
//! schemas and the OpenAPI documents, rebuilt as one value when custom
//! resources come and go, so a request sees one consistent snapshot.

use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::error::{ApiError, Error};
use crate::openapi::{Documents, Schemas};
use crate::registry::{Registry, Resource};
use crate::storage::Storage;

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

/// The model being served, replaced whole when definitions change.
pub struct ModelCell {
    current: RwLock<Arc<Model>>,
    /// The resourceVersions of the definitions the current model was
    /// built from, to skip rebuilding when nothing changed.
    built_from: RwLock<Vec<String>>,
}

impl ModelCell {
    pub fn new(model: Model) -> ModelCell {
        ModelCell {
            current: RwLock::new(Arc::new(model)),
            built_from: RwLock::new(Vec::new()),
        }
    }

    pub fn get(&self) -> Arc<Model> {
        match self.current.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the custom resources from the stored definitions.
    pub async fn refresh(&self, storage: &Storage) -> Result<(), ApiError> {
        let model = self.get();
        let Some(crds) =
            model
                .registry
                .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return Ok(());
        };
        let page = storage.list(&crds, None, 0, 0, None, &|_| true).await?;
        let versions: Vec<String> = page
            .items
            .iter()
            .map(|c| {
                c["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect();
        let unchanged = self
            .built_from
            .read()
            .map(|b| *b == versions)
            .unwrap_or(false);
        if unchanged {
            return Ok(());
        }
        let items: Vec<Value> = page.items;
        let resources = crate::groups::apiextensions::from_definitions(&items);
        let next = model.with_custom(resources);
        if let (Ok(mut current), Ok(mut built)) = (self.current.write(), self.built_from.write()) {
            *current = Arc::new(next);
            *built = versions;
        }
        Ok(())
    }

    /// Stops serving a definition's resources (it is about to go).
    pub fn forget(&self, group: &str, plural: &str) {
        let model = self.get();
        let custom: Vec<crate::registry::Resource> = model
            .registry
            .resources()
            .iter()
            .filter(|r| r.custom_schema.is_some() && !(r.group == group && r.plural == plural))
            .map(|r| (**r).clone())
            .collect();
        let next = model.with_custom(custom);
        if let (Ok(mut current), Ok(mut built)) = (self.current.write(), self.built_from.write()) {
            *current = Arc::new(next);
            built.clear();
        }
    }
}
