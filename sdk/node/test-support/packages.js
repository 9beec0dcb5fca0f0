// load(name) imports a package as installed in sdk/node/node_modules, for
// the examples under examples/node (which live outside sdk/node, where
// Node would not look for them). In your own project, import the package.

/** Imports the named package (with the "import" condition) from sdk/node. */
export const load = (name) => import(name);
