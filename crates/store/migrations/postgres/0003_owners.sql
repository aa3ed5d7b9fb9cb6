-- Which node runs a recording's task (docs/http-contract.md, v3 "One
-- library for many nodes"): the --node-url of the node that created it, in
-- a cluster; NULL on a single node (and for rows from before), where the
-- one server runs every recording. Same text for both engines.

ALTER TABLE recordings ADD COLUMN owner_url TEXT;
