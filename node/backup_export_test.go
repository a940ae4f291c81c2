package node

// BackedUpForTest exposes backedUp to the external tests.
var BackedUpForTest = backedUp
