// Bundle the Annotator front end into the Python package: src/va_widgets/static/.
//   npm run build   minified ESM (what the wheel ships)
//   npm run dev     rebuild on change, inline source maps (use with ANYWIDGET_HMR=1)
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

const watch = process.argv.includes("--watch");
const outdir = fileURLToPath(new URL("../src/va_widgets/static/", import.meta.url));

const options = {
  entryPoints: ["annotator.js", "annotator.css"].map((f) => fileURLToPath(new URL(f, import.meta.url))),
  outdir,
  bundle: true,
  format: "esm",
  target: ["es2020"],
  minify: !watch,
  sourcemap: watch ? "inline" : false,
  logLevel: "info",
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
} else {
  await esbuild.build(options);
}
