// jinliu.js: the drop-in ES module for merchant sites, built to dist/js/jinliu.js (a fixed name,
// served with `no-cache`; no Vue inside, a few kB).
import { defineConfig } from 'vite'

export default defineConfig({
  publicDir: false,
  build: {
    outDir: 'dist/js',
    emptyOutDir: false,
    target: 'es2020',
    lib: {
      entry: 'src/dropin/jinliu.ts',
      formats: ['es'],
      fileName: () => 'jinliu.js',
    },
  },
})
