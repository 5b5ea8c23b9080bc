// Prints, as JSON on stdout, the library's copy of the CLI contract (io.cireport.Contract.asMap()) and the verdict
// of the library's own option checks on each given value: {"contract": {...}, "verdicts": {option: [ok, ...]}}.
// Used by tests/integration/test_library_cli_contract.py to compare both with `ci-report config --json`.
// Usage (from shared-library/): groovy -cp test:src:test/stubs test/tools/contract_dump.groovy VALUES.json
// VALUES.json: {"<option>": [<value>, ...]}; each value is checked with Contract.check, as the steps do.
import groovy.json.JsonOutput
import groovy.json.JsonSlurper
import io.cireport.Contract

Map values = (Map) new JsonSlurper().parse(new File(args[0]))
Map verdicts = [:]
values.each { option, list ->
  verdicts[option] = list.collect { v -> Contract.check('test', option.toString(), v).isEmpty() }
}
println JsonOutput.toJson([contract: Contract.asMap(), verdicts: verdicts])
