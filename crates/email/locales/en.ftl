# The service's mail, in English (the reference catalogue: the others have exactly
# these messages). $service is the service's name, $username the account's.

greeting = Hello { $username },
code-validity = Type it on the page that asked for it. It works once, within the next hour.
code-mistake = If you did not ask for this, someone typed your address by mistake: you can ignore this message.

verification-subject = Your code for { $service }: { $code }
verification-intro = Your code to add this address to your account on { $service } is:

registration-subject = Your code for { $service }: { $code }
registration-intro = Your code to finish creating your account on { $service } is:
registration-mistake = If you did not ask for this, someone typed your address by mistake: you can ignore this message, and no account is made.

recovery-subject = Set a new password for { $service }
recovery-intro = Someone asked to set a new password for your account on { $service }. To choose one, open this link:
recovery-validity = { $minutes ->
    [one] It works once, within the next minute.
   *[other] It works once, within the next { $minutes } minutes.
}
recovery-mistake = If you did not ask for this, you can ignore this message: your password stays as it is.

test-subject = Test message from { $service }
test-intro = This is a test message from { $service }, sent by `mas-cli doctor --send-test-email`.
test-outro = If you can read it, mail from the service reaches this address.
