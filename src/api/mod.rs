//! The HTTP side of trailwarden: the JSON API and the web console it serves.

pub mod console;
