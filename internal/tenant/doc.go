// Package tenant keeps the platform's tenants, their resource limits and their
// API keys, and turns a presented key into the principal it authenticates.
//
// Keys are shown once, when created, as "spk_<tenant>_<secret>" (the secret is
// 32 random bytes, base64url); only the SHA-256 of the secret is stored. The
// tenant name in the key finds the record to compare against, and the
// comparison takes constant time. A key is high-entropy, so a fast hash is
// enough: there is nothing to brute-force that a slow hash would protect.
//
// The admin key ("spk_admin_<secret>") authorises platform operations (creating
// and removing tenants); it is not stored in the database but given to the Store
// by the platform, which keeps it in HOME/admin.key or $SPINDLE_ADMIN_KEY.
package tenant
