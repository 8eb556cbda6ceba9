//! Unit tests of the importer on hand-built graphs.
