import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Each file starts its own `signoff serve`; waits for reviews are bounded in the tests.
    testTimeout: 20_000,
    hookTimeout: 40_000,
    // Fail on a leaked handle rather than hang: every file stops its server in afterAll.
    teardownTimeout: 10_000,
  },
});
