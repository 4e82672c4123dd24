//! Reading a `DynamoCluster` manifest file, for the local platform.
//!
//! The local platform reads the same YAML that `kubectl apply` gets. This
//! module parses it as strictly as the API server would: the document must be
//! a `dynamokv.io/v1alpha1` `DynamoCluster` with a name, and a field the
//! schema does not know is an error rather than silently dropped.

use kube::{CustomResourceExt, Resource};
use serde::Deserialize as _;
use serde_json::Value;

use crate::DynamoCluster;

/// Why a manifest could not be read as a `DynamoCluster`.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text is not YAML.
    #[error("the manifest is not valid YAML: {source}")]
    Yaml {
        /// The parser's error, with the line and column.
        #[source]
        source: serde_yaml::Error,
    },

    /// No document of the file is a `DynamoCluster`.
    #[error(
        "the manifest holds no DynamoCluster: add a document with `apiVersion: dynamokv.io/v1alpha1` and `kind: DynamoCluster`"
    )]
    NoCluster,

    /// More than one document is a `DynamoCluster`.
    #[error(
        "the manifest holds {count} DynamoCluster documents, but one file describes one cluster: keep one of them"
    )]
    SeveralClusters {
        /// How many `DynamoCluster` documents the file holds.
        count: usize,
    },

    /// The `DynamoCluster` document has another `apiVersion`.
    #[error(
        "the DynamoCluster has apiVersion {found:?}, but this release reads {expected:?}: set `apiVersion: {expected}`"
    )]
    WrongApiVersion {
        /// The document's `apiVersion`.
        found: String,
        /// The `apiVersion` this crate reads.
        expected: String,
    },

    /// The document has no `metadata.name`.
    #[error("the DynamoCluster has no name: set `metadata.name`, for example `name: demo`")]
    MissingName,

    /// The document has a field the schema does not define.
    #[error(
        "the DynamoCluster has an unknown field `{path}`: check its spelling (`kubectl explain dynamocluster --recursive` lists the fields)"
    )]
    UnknownField {
        /// Dotted path of the field, such as `spec.replica`.
        path: String,
    },

    /// The document uses a field's name from an earlier release.
    #[error(
        "the DynamoCluster has the field `{path}`, which this release calls `{now}`: rename it (the short names n, r and w of replication read as booleans in YAML 1.1)"
    )]
    RenamedField {
        /// Dotted path of the old field, such as `spec.replication.n`.
        path: String,
        /// Dotted path of the field that replaced it.
        now: &'static str,
    },

    /// A field has the wrong type, or a required field is missing.
    #[error("the DynamoCluster does not match its schema: {source}")]
    Schema {
        /// The deserializer's error.
        #[source]
        source: serde_yaml::Error,
    },
}

impl DynamoCluster {
    /// Reads a `DynamoCluster` from a manifest file's text.
    ///
    /// The text may hold several YAML documents (`---`); exactly one of them
    /// must be a `DynamoCluster`, and the others are ignored. Fields not set
    /// in the manifest get their defaults, as on the API server. This checks
    /// the document's shape only: call
    /// [`DynamoClusterSpec::validate`](crate::DynamoClusterSpec::validate) to
    /// check that the spec can be run.
    ///
    /// # Errors
    ///
    /// A [`ManifestError`] when the text is not YAML, holds no or several
    /// `DynamoCluster` documents, has the wrong `apiVersion`, lacks a name,
    /// has a field the schema does not know (or one renamed since an earlier
    /// release), or has a field of the wrong type.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamo_crd::DynamoCluster;
    ///
    /// let cluster = DynamoCluster::from_yaml(
    ///     "apiVersion: dynamokv.io/v1alpha1
    /// kind: DynamoCluster
    /// metadata:
    ///   name: demo
    /// spec:
    ///   replicas: 3
    /// ",
    /// )?;
    /// assert_eq!(cluster.spec.replicas, 3);
    /// assert_eq!(cluster.spec.partitions, 256);
    /// cluster.spec.validate()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ManifestError> {
        // (index of the document in the file, the document)
        let mut clusters = Vec::new();
        for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value = serde_yaml::Value::deserialize(document)
                .map_err(|source| ManifestError::Yaml { source })?;
            let kind = value.get("kind").and_then(serde_yaml::Value::as_str);
            if kind == Some(&*Self::kind(&())) {
                clusters.push((index, value));
            }
        }
        let (index, value) = match clusters.len() {
            0 => return Err(ManifestError::NoCluster),
            1 => clusters.pop().expect("one document"),
            count => return Err(ManifestError::SeveralClusters { count }),
        };

        let expected = Self::api_version(&()).into_owned();
        let found = value.get("apiVersion").and_then(serde_yaml::Value::as_str);
        if found != Some(expected.as_str()) {
            return Err(ManifestError::WrongApiVersion {
                found: found.unwrap_or_default().to_owned(),
                expected,
            });
        }
        if let Some(path) = unknown_field(&value) {
            if let Some(&(_, now)) = RENAMED_FIELDS.iter().find(|(old, _)| *old == path) {
                return Err(ManifestError::RenamedField { path, now });
            }
            return Err(ManifestError::UnknownField { path });
        }
        // Deserialize from the text rather than from `value`: the error then
        // names the field and its line and column.
        let document = serde_yaml::Deserializer::from_str(text)
            .nth(index)
            .expect("the document was read above");
        let cluster =
            Self::deserialize(document).map_err(|source| ManifestError::Schema { source })?;
        if cluster.metadata.name.as_deref().is_none_or(str::is_empty) {
            return Err(ManifestError::MissingName);
        }
        Ok(cluster)
    }
}

/// Fields of earlier releases and the paths that replaced them.
const RENAMED_FIELDS: &[(&str, &str)] = &[
    ("spec.replication.n", "spec.replication.factor"),
    ("spec.replication.r", "spec.replication.readQuorum"),
    ("spec.replication.w", "spec.replication.writeQuorum"),
];

/// The first field of `document` that the CRD's schema does not define, as
/// a dotted path. The API server rejects such fields under strict field
/// validation (kubectl's default).
fn unknown_field(document: &serde_yaml::Value) -> Option<String> {
    // A document whose keys are not strings fails later, in deserialization.
    let document = serde_json::to_value(document).ok()?;
    let crd = DynamoCluster::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|version| version.schema.as_ref())
        .and_then(|validation| validation.open_api_v3_schema.as_ref())
        .and_then(|schema| serde_json::to_value(schema).ok())?;
    let Value::Object(mut fields) = document else {
        return None;
    };
    // The API server knows these for every kind; the schema leaves them out.
    for key in ["apiVersion", "kind", "metadata"] {
        fields.remove(key);
    }
    let mut path = Vec::new();
    find_unknown(&Value::Object(fields), &schema, &mut path).then(|| path.join("."))
}

/// Walks `value` along `schema`; on the first key the schema does not allow,
/// leaves its path in `path` and returns true.
fn find_unknown(value: &Value, schema: &Value, path: &mut Vec<String>) -> bool {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return false;
    }
    match value {
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            for (key, field) in fields {
                let field_schema = match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(field_schema), _) | (None, Some(field_schema)) => field_schema,
                    // An object with neither (such as `metadata`) takes anything.
                    (None, None) if properties.is_none() => continue,
                    (None, None) => {
                        path.push(key.clone());
                        return true;
                    }
                };
                path.push(key.clone());
                if find_unknown(field, field_schema, path) {
                    return true;
                }
                path.pop();
            }
            false
        }
        Value::Array(items) => {
            let Some(item_schema) = schema.get("items") else {
                return false;
            };
            items.iter().enumerate().any(|(index, item)| {
                path.push(index.to_string());
                let found = find_unknown(item, item_schema, path);
                if !found {
                    path.pop();
                }
                found
            })
        }
        _ => false,
    }
}
