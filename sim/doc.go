// Package sim simulates a ferry network in one process: many real nodes
// (package node, each with its SQLite store and spool in its own folder)
// on a virtual clock, linked by scripted contacts — sticks walked on a
// schedule ([usb.Sync] on folders), LAN, Internet and LoRa links up part
// of the day ([carriers.Sync] over in-memory links, LoRa with its
// capacity) and cuts — exchanging bundles through the real selection,
// sync and ingest code under a routing policy ([node.Routing]).
//
// Most callers need two functions: [Run] simulates a [Scenario] under one
// routing mode and returns a [Result] (delivery ratio, latency median and
// 95th percentile, bytes carried per byte delivered, stored copies, the
// largest store against its quota); [WriteTable] prints results side by
// side. [Network] is the building block for tests that script contacts
// by hand (the chain test of docs/routing.md).
//
// # Scenarios
//
// Scenarios are Go values ([Small], [Bench20]; [ScenarioByName]); their
// fields are documented on [Scenario] and in docs/routing.md. The
// command is `ferry sim --scenario NAME [--mode ferry,epidemic,direct]`.
package sim
