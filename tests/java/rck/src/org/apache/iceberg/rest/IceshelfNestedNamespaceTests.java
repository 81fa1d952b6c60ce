/*
 * The RCK's catalog tests with the one capability Iceberg 1.11.0's RCK cannot switch on by a property:
 * nested namespaces (CatalogTests#supportsNestedNamespaces() keeps its default, false, in
 * RESTCompatibilityKitCatalogTests). Iceshelf supports them, so tests/test_rck.py runs the two tests
 * that this flag gates (testDropNamespaceWithNestedNamespace, testListNestedNamespaces) through this
 * subclass and selects nothing else from it.
 *
 * It inherits the kit's beforeClass, which refuses a catalog that still has the kit's test namespaces:
 * the kit purges them before each test, not after, so tests/test_rck.py orders classes by name and this
 * one runs first, on the fresh warehouse.
 */
package org.apache.iceberg.rest;

public class IceshelfNestedNamespaceTests extends RESTCompatibilityKitCatalogTests {
  @Override
  protected boolean supportsNestedNamespaces() {
    return true;
  }
}
