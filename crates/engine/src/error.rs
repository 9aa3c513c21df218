//! Errors a run records. Their `name` comes from a closed list (spec decision 10), so users can
//! match on it in Workflow Error handlers and in the errors API.

use std::fmt;

/// The closed list of error names a run may record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorName {
    /// A Throw Error node.
    ThrowError,
    /// A Function node script threw an `Error` (or a non-error value, or a custom error class).
    FunctionNodeError,
    /// A Function node script threw one of JavaScript's built-in error types: Losant names
    /// these `FunctionNode` + the type (`FunctionNodeTypeError`, …).
    FunctionNodeTypeError,
    FunctionNodeRangeError,
    FunctionNodeReferenceError,
    FunctionNodeSyntaxError,
    FunctionNodeUriError,
    FunctionNodeEvalError,
    /// A template could not be rendered (or a JSON template did not give JSON).
    TemplateError,
    /// An expression could not be evaluated.
    ExpressionError,
    /// A node's input or configuration was not acceptable at run time.
    ValidationError,
    /// The run (or a Function node) took longer than allowed.
    TimeoutError,
    /// A Function node used more memory than allowed.
    MemoryError,
    /// Workflow storage refused an operation (caps, a non-number to increment, …).
    StorageError,
    /// An HTTP node's request failed in transport: a bad URL, DNS, connection, TLS, a timeout,
    /// or a response over the size limit. (A 4xx or 5xx response is data, not an error.)
    HttpError,
    /// A SQL node could not connect, or the server refused its query, or a result column could
    /// not be converted.
    SqlError,
    /// A Redis node's command failed: connecting, authenticating, a timeout, or an error reply.
    RedisError,
    /// An MQTT node could not publish: its integration is missing, disabled or not connected,
    /// or the topic is not one a message can be published to.
    MqttError,
    /// A value was over its size limit.
    PayloadTooLarge,
    /// The node type is one Losant knows but flowd cannot run yet.
    UnsupportedNode,
    /// More paths were alive at once than a run may hold.
    PathLimit,
    /// flowd failed inside; the message says what, the log says why.
    InternalError,
}

impl ErrorName {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorName::ThrowError => "ThrowError",
            ErrorName::FunctionNodeError => "FunctionNodeError",
            ErrorName::FunctionNodeTypeError => "FunctionNodeTypeError",
            ErrorName::FunctionNodeRangeError => "FunctionNodeRangeError",
            ErrorName::FunctionNodeReferenceError => "FunctionNodeReferenceError",
            ErrorName::FunctionNodeSyntaxError => "FunctionNodeSyntaxError",
            ErrorName::FunctionNodeUriError => "FunctionNodeURIError",
            ErrorName::FunctionNodeEvalError => "FunctionNodeEvalError",
            ErrorName::TemplateError => "TemplateError",
            ErrorName::ExpressionError => "ExpressionError",
            ErrorName::ValidationError => "ValidationError",
            ErrorName::TimeoutError => "TimeoutError",
            ErrorName::MemoryError => "MemoryError",
            ErrorName::StorageError => "StorageError",
            ErrorName::HttpError => "HttpError",
            ErrorName::SqlError => "SqlError",
            ErrorName::RedisError => "RedisError",
            ErrorName::MqttError => "MqttError",
            ErrorName::PayloadTooLarge => "PayloadTooLarge",
            ErrorName::UnsupportedNode => "UnsupportedNode",
            ErrorName::PathLimit => "PathLimit",
            ErrorName::InternalError => "InternalError",
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A halting error raised by a node (or by the run itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeError {
    pub name: ErrorName,
    pub message: String,
}

impl NodeError {
    pub fn new(name: ErrorName, message: impl Into<String>) -> Self {
        NodeError {
            name,
            message: message.into(),
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for NodeError {}

impl From<crate::storage::StorageError> for NodeError {
    fn from(e: crate::storage::StorageError) -> Self {
        let name = match &e {
            crate::storage::StorageError::Rule(
                flowd_model::storage::StorageRuleError::ValueTooLarge { .. },
            ) => ErrorName::PayloadTooLarge,
            _ => ErrorName::StorageError,
        };
        NodeError::new(name, e.to_string())
    }
}

/// Why a workflow could not be compiled; the message names the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);
