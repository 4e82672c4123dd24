//! DynamoKV operator: the token planner, the membership driver over a
//! [`driver::Platform`], and the local process platform.

pub mod admin;
pub mod driver;
pub mod k8s;
pub mod local;
pub mod plan;
pub mod pools;
