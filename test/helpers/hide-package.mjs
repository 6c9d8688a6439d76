// Loaded with `node --import`: makes the package named by CONVEY_TEST_HIDE_PACKAGE impossible to
// import, as in a jobs repository that never installed it.
import { register } from 'node:module';

register(
  `data:text/javascript,${encodeURIComponent(`
    const hidden = ${JSON.stringify(process.env.CONVEY_TEST_HIDE_PACKAGE ?? '')};
    export async function resolve(specifier, context, next) {
      if (hidden && (specifier === hidden || specifier.startsWith(hidden + '/'))) {
        throw Object.assign(new Error("Cannot find package '" + specifier + "' imported from " + context.parentURL), { code: 'ERR_MODULE_NOT_FOUND' });
      }
      return next(specifier, context);
    }
  `)}`,
);
